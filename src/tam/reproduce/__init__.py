"""`tam reproduce`: the thesis's experiments as resumable grids, ending in tables traceable to run folders."""
