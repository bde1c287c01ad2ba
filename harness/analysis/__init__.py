"""Statistics and figures for claim reports: intervals, the logistic horizon fit, plotting.

A leaf: it imports nothing of the harness (numpy, scipy, matplotlib only), so claims and reports
share one implementation of each statistic and one look for every figure.
"""
