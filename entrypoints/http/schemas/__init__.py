"""Request and response bodies (msgspec Structs) and their mapping to and from the domain: one
module per area, as in `application/`, and `common` for what every area shares."""
