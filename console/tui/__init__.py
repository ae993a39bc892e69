"""The Textual console: the app, its layout (.tcss), the view of the controller's state, the palette."""
