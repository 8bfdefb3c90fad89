"""pure: model + secrets -> immutable runtime snapshot"""
