"""The small trainable suite: synthetic captioned videos, flow-matching training, alignment scores."""
