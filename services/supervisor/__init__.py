"""`hean up`: the whole local stack as supervised processes, with a live terminal view."""
