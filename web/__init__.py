"""`pt serve`: the live dashboard (Starlette app, server-side templates, no build step)."""
