//! The `framecart` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Thousands of small events a second are allocated, serialised and freed on many threads:
/// glibc's allocator spent a fifth of the process's time on it (measured at 2k clicks/s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // Logs go to standard error; standard output is for command results.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let json = std::env::var("FRAMECART_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let outcome = framecart_api::cli::run(framecart_api::cli::Cli::parse()).await;
    // Exit here rather than by returning: returning would drop the runtime, which waits
    // for blocking work still running (a frame being detected), and a stop must end
    // within its grace period. Everything durable was closed by then.
    match outcome {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::exit(1)
        }
    }
}
