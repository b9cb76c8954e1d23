"""Wetland masks, regions and their catalogue, annual totals and carbon budgets."""
