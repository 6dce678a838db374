"""Pieces shared by the Streamlit pages (runtime access, formatting, charts). Never imports kafka."""
