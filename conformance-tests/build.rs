//! The cases, the profile examples and the mapping fixtures are compiled into the binary;
//! rebuild when any of them changes.

fn main() {
    println!("cargo:rerun-if-changed=cases");
    println!("cargo:rerun-if-changed=../profiles");
    println!("cargo:rerun-if-changed=../mappings");
}
