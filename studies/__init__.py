"""The built-in studies of gradsim, one question per script.

This folder is the checkout's top-level ``studies/`` and is installed with the package as
``gradsim.studies``, so that ``gradsim list`` and ``gradsim run NAME`` find every built-in
study from any working directory. Each ``*.py`` here (not starting with ``_``) defines
``STUDY = gradsim.Study(...)``; the runner reads the file and sends its text to the workers.
"""
