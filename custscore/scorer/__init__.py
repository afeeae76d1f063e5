"""The scorer: change feed -> batch -> features -> predict -> SHAP reasons -> write back; using the results; drift."""
