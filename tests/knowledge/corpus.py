"""A realistic small-business knowledge base (a dental practice) and labelled questions.

Each question names the fact that answers it: a retrieval "hits" when a passage among the
top k contains that text. Questions are phrased the way patients write, so some share the
documents' words and some don't. Used by the retrieval test and by ``bench/knowledge.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCUMENTS: list[tuple[str, str, str]] = [
    # (kind, title, content)
    (
        "text",
        "About Brightside Dental",
        """# About us

Brightside Dental is an independent family dental practice in Riverside, founded in 2004 by Dr. Amara Okafor.
We look after around 6,000 patients of all ages, from first baby teeth to dentures.

## Our team

Dr. Amara Okafor (principal dentist) has over 20 years of experience in restorative dentistry.
Dr. Lukas Berg focuses on orthodontics and clear aligners.
Dr. Priya Nair is our children's dentist and treats anxious patients with extra time and care.
Our two hygienists, Tom and Grace, run the hygiene clinic four days a week.

## Languages

Besides English, our team speaks Spanish, Hindi and German.
""",
    ),
    (
        "text",
        "Opening hours and location",
        """# Opening hours

Monday to Thursday: 8:00 am to 7:00 pm.
Friday: 8:00 am to 4:00 pm.
Saturday: 9:00 am to 1:00 pm, for check-ups and hygiene appointments only.
We are closed on Sundays and public holidays.

# Finding us

We are at 48 Mill Lane, Riverside, on the first floor above the pharmacy.
The number 12 and 31 buses stop outside the practice.

## Parking and access

There is free parking for patients behind the building, with two disabled bays next to the entrance.
A lift goes to the first floor, so the practice is fully wheelchair accessible.
""",
    ),
    (
        "text",
        "New patients",
        """# Becoming a patient

We are accepting new patients. Book your first visit online or call 555-0142.
Your first appointment is a full examination with X-rays and takes about 45 minutes.
Please arrive 10 minutes early to fill in your medical history form, and bring a list of any medicines you take.

## Transferring records

If you are moving from another practice, we can request your X-rays and notes for you; just sign the transfer form at reception.
""",
    ),
    (
        "text",
        "Fees, insurance and payment",
        """# Paying for treatment

We accept cash, all major credit and debit cards, and Apple Pay. Payment is due on the day of treatment.

## Insurance

We are in network with Delta Dental, Cigna and MetLife. For other insurers we give you an itemised receipt so you can claim the cost back yourself.
We check your coverage before any treatment plan over $300.

## Payment plans

Treatments over $1,000 can be spread over 12 months interest-free with our in-house payment plan, subject to a short credit check.

## Membership plan

Patients without insurance can join the Brightside Care Plan for $25 a month: two check-ups and two hygiene visits a year, plus 10% off other treatment.
""",
    ),
    (
        "text",
        "Emergency care",
        """# Dental emergencies

If you are in pain, call us as early as possible: we keep same-day emergency slots every weekday morning.
Outside opening hours, call our on-call line on 555-0199, answered from 7 pm to 10 pm and at weekends from 9 am to 5 pm.
For heavy bleeding that will not stop, facial swelling that affects breathing or swallowing, or a serious injury, go straight to hospital A&E.

## Knocked-out tooth

Pick the tooth up by the crown, not the root. Rinse it briefly in milk and put it back in the socket if you can, or keep it in milk, and come in within one hour.
""",
    ),
    (
        "text",
        "Cancellation policy",
        """# Cancelling or moving an appointment

Please give us at least 24 hours' notice if you need to cancel or reschedule.
Appointments missed or cancelled with less notice are charged a $40 fee. The fee is waived once a year and for emergencies.
You can reschedule from the link in your reminder text message.
We send appointment reminders by text message two days before your visit.
""",
    ),
    (
        "text",
        "Children's dentistry",
        """# Children

We recommend a first visit around your child's first birthday, or when the first tooth appears.
Check-ups for children under 18 are free for families on the Brightside Care Plan.
We offer fissure sealants from age six to protect the back teeth from decay, and fluoride varnish twice a year.

## Nervous children

Dr. Priya Nair runs short "happy visits" where children can sit in the chair and meet the team before any treatment.
""",
    ),
    (
        "text",
        "Cosmetic dentistry",
        """# Teeth whitening

Home whitening uses custom trays made from impressions of your teeth and a gentle gel worn for two weeks. It costs $350 including the trays.
In-chair whitening takes about 90 minutes and costs $600. Whitening does not change the colour of crowns or fillings.

# Veneers

Porcelain veneers are thin shells bonded to the front of the teeth to fix chips, gaps or discolouration. They cost from $950 per tooth and usually need two visits.

# Composite bonding

Composite bonding repairs small chips in one visit, from $250 per tooth.
""",
    ),
    (
        "text",
        "Orthodontics",
        """# Straightening teeth

We offer clear aligners (Invisalign) and fixed braces for teenagers and adults.
A free 30-minute orthodontic consultation includes a 3D scan, so you can see the expected result before you decide.
Clear aligner treatment usually takes 6 to 18 months and costs from $3,200. Fixed metal braces cost from $2,800.
After treatment you wear a retainer at night to keep your teeth in place.
""",
    ),
    (
        "text",
        "Aftercare",
        """# After a tooth extraction

Bite firmly on the gauze for 30 minutes. Do not rinse, smoke or drink through a straw for 24 hours, so the blood clot can settle.
From the next day, rinse gently with warm salt water after meals for a week. Eat soft food and chew on the other side.
Mild pain can be eased with paracetamol or ibuprofen; call us if pain gets worse after three days, which can be a sign of dry socket.

# After a filling

If you had an anaesthetic, wait until the numbness wears off, usually two to three hours, before eating or drinking anything hot.
""",
    ),
    (
        "text",
        "Hygiene and gum health",
        """# Hygiene appointments

A hygiene visit with scale and polish takes 30 minutes and costs $85. Most adults need one every six months; people with gum disease may need one every three months.
Our hygienists also show you how to use interdental brushes and floss properly.

## Bleeding gums

Gums that bleed when you brush are often the first sign of gum disease (gingivitis), which is reversible with good cleaning. Book a hygiene visit rather than brushing less.
""",
    ),
    (
        "text",
        "Anxious patients",
        """# Nervous about the dentist?

Tell us when you book and we will give you a longer appointment with time to talk first.
We offer the "stop signal": raise your hand and we pause straight away.
For more complex treatment, intravenous sedation is available on Thursdays with our visiting sedation specialist. You will need someone to take you home afterwards.
""",
    ),
    (
        "text",
        "Dentures and implants",
        """# Dentures

Full and partial dentures are made in our partner laboratory and usually take four to five weeks from the first impressions.
Denture repairs are often ready the same day if you bring them in before 10 am.

# Dental implants

An implant replaces a missing tooth with a titanium post and a crown. The whole treatment takes three to six months, including healing time.
Single implants cost from $2,400 including the crown. We offer a free implant consultation with a CT scan review.
""",
    ),
    (
        "text",
        "Gift vouchers and referrals",
        """# Gift vouchers

Brightside gift vouchers can be bought at reception in any amount from $25 and are valid for 12 months. They can be used for whitening, hygiene visits or any treatment.

# Refer a friend

When a friend you refer completes their first examination, you both get $30 off your next hygiene appointment.
""",
    ),
    (
        "text",
        "Infection control",
        """# Keeping you safe

All instruments are cleaned and sterilised in an autoclave after every patient, and single-use items are never reused.
Surfaces in the surgery are disinfected between appointments, and every treatment room has a medical-grade air filter.
""",
    ),
    (
        "file",
        "price-list.csv",
        """Treatment,Price,Notes
New patient examination with X-rays,$95,Includes two bitewing X-rays
Routine check-up,$55,Every 6 to 12 months
Emergency appointment,$75,Treatment charged separately
White filling,From $140,Tooth-coloured composite
Root canal treatment (front tooth),$650,Usually one visit
Root canal treatment (molar),$980,Usually two visits
Crown,From $1100,Porcelain or zirconia
Tooth extraction,From $150,Surgical extractions from $300
Mouthguard for sports,$120,Custom-fitted
Night guard for teeth grinding,$280,Custom-fitted
""",
    ),
]


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    answer: str  # text that a passage answering the question contains


QUESTIONS: list[LabelledQuestion] = [
    LabelledQuestion("are you open on saturdays?", "Saturday: 9:00 am to 1:00 pm"),
    LabelledQuestion("what time do you close on friday", "Friday: 8:00 am to 4:00 pm"),
    LabelledQuestion("is there somewhere to park my car", "free parking for patients"),
    LabelledQuestion("can I get in with a wheelchair", "wheelchair accessible"),
    LabelledQuestion("which bus goes to the practice", "number 12 and 31 buses"),
    LabelledQuestion("do you take new patients", "We are accepting new patients"),
    LabelledQuestion("how long does the first visit take", "takes about 45 minutes"),
    LabelledQuestion("what should I bring to my first appointment", "bring a list of any medicines"),
    LabelledQuestion("can you get my records from my old dentist", "request your X-rays and notes"),
    LabelledQuestion("do you accept Cigna insurance", "Delta Dental, Cigna and MetLife"),
    LabelledQuestion("can I pay in instalments", "interest-free"),
    LabelledQuestion("I don't have insurance, is there a monthly plan", "Brightside Care Plan for $25 a month"),
    LabelledQuestion("what do I do if I have toothache at the weekend", "on-call line on 555-0199"),
    LabelledQuestion("my son's tooth got knocked out playing football", "keep it in milk"),
    LabelledQuestion("my face is swollen and I can hardly swallow", "go straight to hospital"),
    LabelledQuestion("is there a charge if I miss my appointment", "$40 fee"),
    LabelledQuestion("how much notice do you need to cancel", "24 hours' notice"),
    LabelledQuestion("when should my baby first see a dentist", "first birthday"),
    LabelledQuestion("my daughter is scared of the dentist", "happy visits"),
    LabelledQuestion("how much is teeth whitening", "It costs $350 including the trays"),
    LabelledQuestion("can you fix a chipped front tooth", "repairs small chips in one visit"),
    LabelledQuestion("how much do veneers cost", "from $950 per tooth"),
    LabelledQuestion("do you do invisalign", "clear aligners (Invisalign)"),
    LabelledQuestion("how long do clear aligners take to straighten teeth", "6 to 18 months"),
    LabelledQuestion("can I smoke after having a tooth pulled", "Do not rinse, smoke or drink through a straw"),
    LabelledQuestion("when can I eat after a filling", "wait until the numbness wears off"),
    LabelledQuestion("my gums bleed when I brush", "first sign of gum disease"),
    LabelledQuestion("how often should I see the hygienist", "every six months"),
    LabelledQuestion("how much is a scale and polish", "costs $85"),
    LabelledQuestion("I'm terrified of dentists, can I be sedated", "intravenous sedation"),
    LabelledQuestion("how long does it take to make false teeth", "four to five weeks"),
    LabelledQuestion("what is the price of a dental implant", "Single implants cost from $2,400"),
    LabelledQuestion("can I buy a voucher as a present", "gift vouchers"),
    LabelledQuestion("are your instruments sterilised", "sterilised in an autoclave"),
    LabelledQuestion("how much does a root canal on a back tooth cost", "Treatment: Root canal treatment (molar)"),
    LabelledQuestion("I grind my teeth at night", "Treatment: Night guard for teeth grinding"),
    LabelledQuestion("does anyone there speak spanish", "Spanish, Hindi and German"),
    LabelledQuestion("who is the children's dentist", "Dr. Priya Nair is our children's dentist"),
    LabelledQuestion("do you send reminders before appointments", "reminders by text message"),
    LabelledQuestion("how much is a crown", "Treatment: Crown\nPrice: From $1100"),
]


def hit(passages: list[str], answer: str) -> bool:
    """Whether any passage contains the answer."""
    return any(answer in text for text in passages)
