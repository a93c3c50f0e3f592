"""Model families of hfpipe."""
