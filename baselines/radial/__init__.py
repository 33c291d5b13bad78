"""radial"""
