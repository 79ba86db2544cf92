"""`tam bench`: time, memory and FLOPs of the attention kinds, as files anyone can rerun and compare."""
