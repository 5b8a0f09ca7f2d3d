"""Plumbing every stage uses: the repository's paths, atomic writes and fingerprints, the device resolver, the
checkpoint mechanism of resumable loops, and the one markdown table writer."""
