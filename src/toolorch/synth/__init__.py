"""ToolScale-style data synthesis: environments (`envs`, `domains/`) and verifiable tasks (`tasks`)."""
