//! Link the plugin with packed relative relocations (DT_RELR): the dynamic loader then
//! applies thousands of start-up relocations from a compact table, which shortens every
//! invocation (a CNI plugin is started once per container per command).

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
}
