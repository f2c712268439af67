//! Fetches the default model (YOLOv4-tiny, COCO) into the model directory
//! (`$FRAMECART_MODEL_DIR`, default `~/.cache/framecart/models`, or the first argument),
//! until the `framecart model fetch` command exists.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os().nth(1).map_or_else(framecart_detector::default_model_dir, Into::into);
    let files = framecart_detector::fetch_model(&dir)?;
    println!("model ready in {}", dir.display());
    println!("  cfg     {}", files.cfg.display());
    println!("  weights {}", files.weights.display());
    println!("  names   {}", files.names.display());
    Ok(())
}
