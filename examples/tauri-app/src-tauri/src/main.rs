// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(error) = points_example_app::run() {
        eprintln!("points-example-app: {error}");
        std::process::exit(1);
    }
}
