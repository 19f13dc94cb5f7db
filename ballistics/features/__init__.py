"""ballistics.features"""
