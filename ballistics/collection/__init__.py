"""ballistics.collection"""
