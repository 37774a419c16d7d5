"""Live swap: a bidirectional gRPC stream of frames swapped as they come (LiveService)."""
