"""The `sessionmeter` command for operators."""
