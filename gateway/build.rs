//! The profiles, mappings and migrations are compiled into the binary (`include_dir!`,
//! `sqlx::migrate!`); rebuild when any of them changes. Without the migrations line a new
//! migration file would not reach the binary until some Rust source changed.

fn main() {
    println!("cargo:rerun-if-changed=../profiles");
    println!("cargo:rerun-if-changed=../mappings");
    println!("cargo:rerun-if-changed=../migrations");
}
