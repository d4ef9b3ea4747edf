"""The pipeline language: transforms, operators, stage markers, modes and apply methods."""
