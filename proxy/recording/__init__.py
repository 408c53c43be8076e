"""What an exchange leaves behind: the tape filled on the hot path, the writer thread that turns it into
rows, the live feed, stored bodies, retention."""
