use std::path::Path;

fn main() {
    // The front end is built into ../dist by `npm run build` (bash .ci/dev does it). A Rust-only
    // build before that (clippy, tests of the workspace) gets a placeholder page, so that
    // `generate_context!` finds the assets it embeds.
    let dist = Path::new("../dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(dist).expect("cannot create ../dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Points example</title><p>The front end is not built: run \
             <code>npm ci &amp;&amp; npm run build</code> in examples/tauri-app, or <code>bash .ci/dev</code>.</p>\n",
        )
        .expect("cannot write ../dist/index.html");
    }
    tauri_build::build();
}
