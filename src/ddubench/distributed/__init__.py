"""DDU-Net on several devices for real: torch.distributed process groups, one block of subimages per rank."""
