"""linear_attn"""
