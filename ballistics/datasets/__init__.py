"""ballistics.datasets"""
