"""The web portal: screens in Azure's words, over the same service layer as the API."""
