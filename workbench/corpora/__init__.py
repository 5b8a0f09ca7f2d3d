"""Real caption corpora: readers of Karpathy / COCO caption files and image folders, and ``prepare`` (the data
layout, downloads, counts)."""
