"""Generated from proto/ by tools/gen_proto.sh (make proto). Do not edit."""
