//! From a click on a `<video>` element to a point in the video frame.
//!
//! A `<video>` element shows its frame with `object-fit: contain`: the frame is scaled by
//! `s = min(ew/vw, eh/vh)` and centred, leaving black bands left and right (pillarbox) or
//! above and below (letterbox). A click at element coordinates `(x, y)` is at frame pixel
//! `((x − ox)/s, (y − oy)/s)`; it hit the picture when that lies in `[0,vw)×[0,vh)`.
//! Frames are compared in normalized coordinates (`u = fx/vw`, `v = fy/vh`), because the
//! played resolution follows YouTube's quality setting and the uploaded file may have
//! another one.

use serde::{Deserialize, Serialize};

/// Largest width or height we accept for an element or a frame: 16K. Anything bigger is
/// a client bug or an attack, not a screen.
pub const MAX_DIMENSION: f64 = 16_384.0;

/// Smallest width or height we accept: one pixel. A smaller size is no screen or video,
/// and dividing by it overflows the frame coordinates to infinity or NaN.
pub const MIN_DIMENSION: f64 = 1.0;

/// A width and a height in pixels, both finite and between [`MIN_DIMENSION`] and
/// [`MAX_DIMENSION`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSize")]
pub struct Size {
    width: f64,
    height: f64,
}

#[derive(Deserialize)]
struct RawSize {
    width: f64,
    height: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("a width and height must be finite numbers of at least {MIN_DIMENSION} pixel")]
    NotPositive,
    #[error("a width or height above {MAX_DIMENSION} pixels is not a real screen or video")]
    TooLarge,
}

impl TryFrom<RawSize> for Size {
    type Error = SizeError;
    fn try_from(raw: RawSize) -> Result<Self, Self::Error> {
        Size::new(raw.width, raw.height)
    }
}

impl Size {
    pub fn new(width: f64, height: f64) -> Result<Self, SizeError> {
        // `!(x >= MIN)` also catches NaN.
        if !(width >= MIN_DIMENSION && height >= MIN_DIMENSION && width.is_finite() && height.is_finite()) {
            return Err(SizeError::NotPositive);
        }
        if width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(SizeError::TooLarge);
        }
        Ok(Self { width, height })
    }

    pub fn width(&self) -> f64 {
        self.width
    }

    pub fn height(&self) -> f64 {
        self.height
    }
}

/// How a frame sits inside an element under `object-fit: contain`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// CSS pixels per frame pixel.
    pub scale: f64,
    /// Width of the band left of the picture, in CSS pixels.
    pub offset_x: f64,
    /// Height of the band above the picture, in CSS pixels.
    pub offset_y: f64,
}

impl Letterbox {
    pub fn fit(element: Size, frame: Size) -> Self {
        let scale = (element.width / frame.width).min(element.height / frame.height);
        Self {
            scale,
            offset_x: (element.width - frame.width * scale) / 2.0,
            offset_y: (element.height - frame.height * scale) / 2.0,
        }
    }
}

/// Where a click landed in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameHit {
    /// Frame pixel column in the played resolution (may lie outside the frame).
    pub x: f64,
    /// Frame pixel row in the played resolution (may lie outside the frame).
    pub y: f64,
    /// `x / frame width`: resolution independent.
    pub u: f64,
    /// `y / frame height`: resolution independent.
    pub v: f64,
    /// CSS pixels per frame pixel at click time; converts a radius in CSS pixels.
    pub scale: f64,
    /// False when the click landed on a black band beside or above the picture.
    pub on_frame: bool,
}

impl FrameHit {
    /// Every coordinate is a finite number (JSON has no NaN or infinity: serde_json writes
    /// them as `null`, which then cannot be read back).
    pub fn is_finite(&self) -> bool {
        [self.x, self.y, self.u, self.v, self.scale].iter().all(|n| n.is_finite())
    }
}

/// Maps a click at element-relative CSS pixels `(x, y)` into the frame.
pub fn element_to_frame(x: f64, y: f64, element: Size, frame: Size) -> FrameHit {
    let fit = Letterbox::fit(element, frame);
    let fx = (x - fit.offset_x) / fit.scale;
    let fy = (y - fit.offset_y) / fit.scale;
    FrameHit {
        x: fx,
        y: fy,
        u: fx / frame.width,
        v: fy / frame.height,
        scale: fit.scale,
        on_frame: (0.0..frame.width).contains(&fx) && (0.0..frame.height).contains(&fy),
    }
}

/// An axis-aligned box in pixels: `[xmin, xmax) × [ymin, ymax)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

impl BoundingBox {
    /// Finite, not negative, and not inside out.
    pub fn is_valid(&self) -> bool {
        [self.xmin, self.ymin, self.xmax, self.ymax].iter().all(|v| v.is_finite() && *v >= 0.0)
            && self.xmin <= self.xmax
            && self.ymin <= self.ymax
    }

    pub fn width(&self) -> f64 {
        self.xmax - self.xmin
    }

    pub fn height(&self) -> f64 {
        self.ymax - self.ymin
    }

    pub fn area(&self) -> f64 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// Intersection over union; 0 for boxes that do not overlap.
    pub fn iou(&self, other: &Self) -> f64 {
        let w = (self.xmax.min(other.xmax) - self.xmin.max(other.xmin)).max(0.0);
        let h = (self.ymax.min(other.ymax) - self.ymin.max(other.ymin)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// The same box in normalized coordinates of a `width` × `height` frame.
    pub fn normalized(&self, width: f64, height: f64) -> Self {
        Self { xmin: self.xmin / width, ymin: self.ymin / height, xmax: self.xmax / width, ymax: self.ymax / height }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn size(w: f64, h: f64) -> Size {
        Size::new(w, h).expect("valid size")
    }

    #[test]
    fn a_16_9_frame_in_a_4_3_element_is_letterboxed() {
        // 800×600 element, 1280×720 frame: scale 0.625, picture 800×450, bands of 75 px.
        let hit = element_to_frame(400.0, 300.0, size(800.0, 600.0), size(1280.0, 720.0));
        assert_eq!((hit.x, hit.y, hit.scale), (640.0, 360.0, 0.625));
        assert!(hit.on_frame);
        let band = element_to_frame(400.0, 20.0, size(800.0, 600.0), size(1280.0, 720.0));
        assert!(!band.on_frame);
        assert!(band.v < 0.0);
    }

    #[test]
    fn a_4_3_frame_in_a_wide_element_is_pillarboxed() {
        // 1600×600 element, 640×480 frame: scale 1.25, picture 800×600, bands of 400 px.
        let left = element_to_frame(399.0, 300.0, size(1600.0, 600.0), size(640.0, 480.0));
        assert!(!left.on_frame);
        let inside = element_to_frame(400.0, 0.0, size(1600.0, 600.0), size(640.0, 480.0));
        assert!(inside.on_frame);
        assert_eq!((inside.x, inside.y), (0.0, 0.0));
        let right = element_to_frame(1200.0, 300.0, size(1600.0, 600.0), size(640.0, 480.0));
        assert!(!right.on_frame, "x = vw is outside [0, vw)");
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert_eq!(Size::new(0.0, 10.0), Err(SizeError::NotPositive));
        assert_eq!(Size::new(-1.0, 10.0), Err(SizeError::NotPositive));
        assert_eq!(Size::new(f64::NAN, 10.0), Err(SizeError::NotPositive));
        assert_eq!(Size::new(f64::INFINITY, 10.0), Err(SizeError::NotPositive));
        assert_eq!(Size::new(1e6, 10.0), Err(SizeError::TooLarge));
        assert!(serde_json::from_str::<Size>(r#"{"width":0,"height":1}"#).is_err());
    }

    proptest! {
        #[test]
        fn the_picture_maps_onto_the_whole_frame(
            ew in 50.0..4000.0f64, eh in 50.0..4000.0f64,
            vw in 16.0..4000.0f64, vh in 16.0..4000.0f64,
            u in 0.0..1.0f64, v in 0.0..1.0f64,
        ) {
            let (element, frame) = (size(ew, eh), size(vw, vh));
            let fit = Letterbox::fit(element, frame);
            // The picture touches two opposite edges and is centred.
            prop_assert!(fit.offset_x.abs() < 1e-6 || fit.offset_y.abs() < 1e-6);
            prop_assert!(fit.offset_x >= -1e-9 && fit.offset_y >= -1e-9);
            // A point at (u, v) of the picture comes back as (u, v).
            let x = fit.offset_x + u * vw * fit.scale;
            let y = fit.offset_y + v * vh * fit.scale;
            let hit = element_to_frame(x, y, element, frame);
            prop_assert!((hit.u - u).abs() < 1e-9 && (hit.v - v).abs() < 1e-9);
        }

        #[test]
        fn normalized_coordinates_do_not_depend_on_the_played_resolution(
            ew in 100.0..3000.0f64, eh in 100.0..3000.0f64,
            vw in 16.0..2000.0f64, aspect in 0.3..3.0f64, factor in 0.25..4.0f64,
            x in 0.0..1.0f64, y in 0.0..1.0f64,
        ) {
            // The same video at another quality: same aspect, other pixel count.
            let vh = vw / aspect;
            let element = size(ew, eh);
            let low = size(vw, vh);
            let Ok(high) = Size::new(vw * factor, vh * factor) else { return Ok(()) };
            let (px, py) = (x * ew, y * eh);
            let a = element_to_frame(px, py, element, low);
            let b = element_to_frame(px, py, element, high);
            prop_assert!((a.u - b.u).abs() < 1e-9 && (a.v - b.v).abs() < 1e-9);
            prop_assert_eq!(a.on_frame, b.on_frame);
        }

        #[test]
        fn clicks_in_a_band_are_off_frame(
            ew in 100.0..3000.0f64, eh in 100.0..3000.0f64,
            vw in 16.0..3000.0f64, vh in 16.0..3000.0f64, t in 0.0..1.0f64,
        ) {
            let (element, frame) = (size(ew, eh), size(vw, vh));
            let fit = Letterbox::fit(element, frame);
            prop_assume!(fit.offset_x > 1.0 || fit.offset_y > 1.0);
            let (x, y) = if fit.offset_x > 1.0 {
                (t * (fit.offset_x - 0.5), eh / 2.0)
            } else {
                (ew / 2.0, t * (fit.offset_y - 0.5))
            };
            prop_assert!(!element_to_frame(x, y, element, frame).on_frame);
        }
    }
}
