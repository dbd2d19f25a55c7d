"""``xray``: the command-line client of the chest X-ray analysis service. HTTP only: it imports nothing of
the service's own code (standard library, httpx and rich), so it can be installed and used alone."""
