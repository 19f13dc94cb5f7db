"""ballistics.report"""
