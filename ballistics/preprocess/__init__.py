"""ballistics.preprocess"""
