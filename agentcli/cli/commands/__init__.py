"""Typer sub-apps and commands. Each parses, builds from config, calls one core function, renders."""
