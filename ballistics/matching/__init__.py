"""ballistics.matching"""
