#ifndef PIPEMSG_PIPEMSG_H
#define PIPEMSG_PIPEMSG_H

#define PM_VERSION "0.1.0"
#define PM_PROTOCOL_VERSION 1

#include "pipemsg/client.h"
#include "pipemsg/codec.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/event.h"
#include "pipemsg/frame.h"
#include "pipemsg/message.h"
#include "pipemsg/pipe.h"

#endif
