"""Stock Monitor's entry point (``streamlit run Home.py``): the frame every page runs in.

It declares the navigation menu from the one list of pages (``ui.navigation.PAGES``, grouped in
sections) and runs the page the visitor asked for; the overview (``pages/home.py``) is the default
page at "/". Each page sets itself up (page config, shared runtime, sidebar, alert toasts) through
``ui.page``, so it also runs on its own under Streamlit's AppTest.
"""

from __future__ import annotations

import streamlit as st

from ui.navigation import menu

st.navigation(menu()).run()
