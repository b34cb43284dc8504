// Migrations are embedded at compile time (diesel_migrations::embed_migrations!): rebuild
// when one changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
