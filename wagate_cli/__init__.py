"""The operator CLI (`wagate …`), built with typer + rich."""
