"""Analytic interference models for shared DNN accelerators, placement policies and a simulator."""
