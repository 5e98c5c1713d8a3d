"""Ways into sessionmeter: the HTTP API, the CLI, and the container that wires them."""
