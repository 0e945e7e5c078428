"""The test kit for plugin authors: loopback fakes of the OpenAI and Twilio servers."""
