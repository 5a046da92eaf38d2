"""Generated from proto/ by apt_model.sdk.protogen (make proto). Do not edit."""
