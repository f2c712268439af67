//! Framecart's object detector: finds objects in a merchant's video over time.
//!
//! A placeholder crate for now: the darknet loader, the burn model, the ffmpeg frame
//! source, NMS and the tracker arrive with the detection work. It may import `domain`
//! only (ARCHITECTURE.md).
