//! Prints the detections in still images: `cargo run --release -p framecart-detector
//! --example detect -- IMAGE...` (model from `$FRAMECART_MODEL_DIR`).

use framecart_detector::{Detector, DetectorConfig, default_model_dir, locate_model, read_image};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = locate_model(&default_model_dir())?;
    let detector = Detector::load(&files, DetectorConfig::default())?;
    println!("model: {}", detector.model_name());
    for path in std::env::args_os().skip(1) {
        let frame = read_image(path.as_ref())?;
        let started = std::time::Instant::now();
        let detections = detector.detect(std::slice::from_ref(&frame))?;
        println!(
            "{} ({}x{}, {:.0} ms)",
            path.to_string_lossy(),
            frame.width,
            frame.height,
            started.elapsed().as_secs_f64() * 1e3
        );
        for d in &detections[0] {
            let [x0, y0, x1, y1] = d.bbox;
            println!("  {:<14} {:.3}  [{x0:.1}, {y0:.1}, {x1:.1}, {y1:.1}]", d.label, d.confidence);
        }
    }
    Ok(())
}
