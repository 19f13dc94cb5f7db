"""ballistics.models"""
