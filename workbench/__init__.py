"""captioning-workbench: zero-shot captioning trained on text only (PCM-Net and relatives)."""
