"""Developer tools that are not services: they talk to the platform only as its users do."""
