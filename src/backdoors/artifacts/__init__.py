"""Files: model and key files, all-or-nothing outputs, publisher signatures,
experiment records and reports."""
