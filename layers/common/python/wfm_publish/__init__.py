"""wfm-publish core: shared by every Lambda function through the common layer."""
