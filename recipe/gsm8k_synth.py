"""Seeded generator of GSM8K-style word problems with exact step-by-step arithmetic.

Every template returns (question, step lines, answer). Step lines carry GSM8K calculator
annotations (`3 * 4 = <<3*4=12>>12`) and the answer ends with a `#### N` line.
Templates are split into *seen* (training) and *unseen* (held out, never trained on).
"""

import random
from collections.abc import Callable
from dataclasses import dataclass

Template = Callable[[random.Random], tuple[str, list[str], int]]
TEMPLATES: dict[str, Template] = {}
UNSEEN: set[str] = set()


def template(seen: bool = True) -> Callable[[Template], Template]:
    """Register a template function under its name (minus the `t_` prefix)."""
    def register(fn: Template) -> Template:
        name = fn.__name__.removeprefix("t_")
        TEMPLATES[name] = fn
        if not seen:
            UNSEEN.add(name)
        return fn
    return register


def calc(expr: str, unit: str = "") -> tuple[str, int]:
    """Evaluate `expr` (ints and + - * /) and render it as `a * b = <<a*b=c>>c`."""
    value = eval(expr, {"__builtins__": {}})  # expr is built here from ints only
    if value < 0 or value != int(value):
        raise ValueError(f"{expr} is not a non-negative integer")
    value = int(value)
    shown = "".join(f" {c} " if c in "+-*/" else c for c in expr)
    return f"{shown} = {unit}<<{expr}={value}>>{value}", value


@dataclass(frozen=True)
class Person:
    name: str
    he: str
    him: str
    his: str


FEMALE = ["Natalia", "Julie", "Betty", "Maria", "Emma", "Olivia", "Ava", "Sophia", "Mia", "Grace",
          "Lily", "Chloe", "Zoe", "Hannah", "Sarah", "Rachel", "Nina", "Amy", "Carla", "Janet",
          "Alice", "Rose", "Fatima", "Priya", "Mei", "Aisha", "Lucia", "Tara", "Jenna", "Kim"]
MALE = ["James", "John", "Tom", "Mark", "Ben", "Leo", "Sam", "Jack", "Henry", "Owen",
        "Carlos", "Ahmed", "Ravi", "Kenji", "Luis", "Omar", "Peter", "Paul", "Dan", "Eric",
        "Felix", "Hugo", "Ivan", "Noah", "Liam", "Ethan", "Mason", "Lucas", "Tyler", "Ryan"]
FOODS = ["apples", "oranges", "bananas", "muffins", "cupcakes", "cookies", "lemons", "peaches",
         "donuts", "bagels", "pears", "plums", "tacos", "sandwiches", "pies"]
THINGS = ["pencils", "stickers", "marbles", "notebooks", "crayons", "erasers", "toy cars", "cards",
          "books", "balloons", "shells", "stamps", "beads", "buttons", "comics"]
CLOTHES = ["shirts", "hats", "scarves", "socks", "jackets", "sweaters", "belts", "dresses"]
CONTAINERS = ["boxes", "bags", "baskets", "crates", "packs", "jars"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def people(r: random.Random, k: int = 1) -> list[Person]:
    """Draw k distinct people with matching pronouns."""
    out = []
    for name in r.sample(FEMALE + MALE, k):
        out.append(Person(name, "she", "her", "her") if name in FEMALE else Person(name, "he", "him", "his"))
    return out


def cap(s: str) -> str:
    return s[0].upper() + s[1:]


# --- shopping and money -------------------------------------------------------------------

@template()
def t_buy_items(r):
    p, = people(r)
    item, n, price = r.choice(FOODS + THINGS), r.randint(2, 12), r.randint(2, 15)
    q = r.choice([f"{p.name} buys {n} {item} for ${price} each. How much does {p.he} spend?",
                  f"{item.capitalize()} cost ${price} each. {p.name} wants to buy {n} of them. How much money does {p.he} need?"])
    s, total = calc(f"{n}*{price}", "$")
    return q, [f"{p.name} spends {s} on {item}."], total


@template()
def t_two_kinds(r):
    p, = people(r)
    a, b = r.sample(FOODS, 2)
    na, pa, nb, pb = r.randint(2, 9), r.randint(2, 12), r.randint(2, 9), r.randint(2, 12)
    q = f"{p.name} buys {na} {a} at ${pa} each and {nb} {b} at ${pb} each. How much does {p.he} spend in total?"
    s1, x = calc(f"{na}*{pa}", "$")
    s2, y = calc(f"{nb}*{pb}", "$")
    s3, total = calc(f"{x}+{y}", "$")
    return q, [f"The {a} cost {s1}.", f"The {b} cost {s2}.", f"In total {p.he} spends {s3}."], total


@template()
def t_change(r):
    p, = people(r)
    item, n, price = r.choice(THINGS), r.randint(2, 9), r.randint(2, 9)
    bill = r.choice([b for b in (20, 50, 100) if b >= n * price])
    q = f"{p.name} buys {n} {item} that cost ${price} each. {cap(p.he)} pays with a ${bill} bill. How much change does {p.he} get?"
    s1, cost = calc(f"{n}*{price}", "$")
    s2, change = calc(f"{bill}-{cost}", "$")
    return q, [f"The {item} cost {s1}.", f"{cap(p.he)} gets {s2} in change."], change


@template()
def t_discount(r):
    p, = people(r)
    item = r.choice(["jacket", "bike", "lamp", "backpack", "watch", "chair", "guitar"])
    pct, price = r.choice([10, 20, 25, 50]), 20 * r.randint(1, 10)
    q = f"A {item} costs ${price}. It is on sale for {pct}% off. How much does {p.name} pay for the {item}?"
    s1, off = calc(f"{price}*{pct}/100", "$")
    s2, pay = calc(f"{price}-{off}", "$")
    return q, [f"The discount is {s1}.", f"{p.name} pays {s2}."], pay


@template()
def t_tickets(r):
    p, = people(r)
    adult, child = r.randint(8, 20), r.randint(3, 9)
    na, nc = r.randint(1, 4), r.randint(2, 6)
    place = r.choice(["zoo", "museum", "circus", "aquarium", "fair", "cinema"])
    q = (f"Tickets to the {place} cost ${adult} for adults and ${child} for children. {p.name} buys tickets for "
         f"{na} adults and {nc} children. How much does {p.he} pay?")
    s1, x = calc(f"{na}*{adult}", "$")
    s2, y = calc(f"{nc}*{child}", "$")
    s3, total = calc(f"{x}+{y}", "$")
    return q, [f"The adult tickets cost {s1}.", f"The children's tickets cost {s2}.", f"{cap(p.he)} pays {s3}."], total


@template()
def t_unit_price(r):
    p, = people(r)
    item, n, each = r.choice(THINGS + CLOTHES), r.randint(2, 12), r.randint(2, 15)
    total = n * each
    q = f"{p.name} paid ${total} for {n} {item}. Each one cost the same. How much did each one cost?"
    s, v = calc(f"{total}/{n}", "$")
    return q, [f"Each one cost {s}."], v


@template()
def t_split_bill(r):
    p, = people(r)
    k, share = r.randint(2, 6), r.randint(8, 30)
    tip = r.randint(2, 12)
    meal = k * share - tip
    q = (f"{p.name} and {k - 1} friends eat dinner. The meal costs ${meal} and they leave a ${tip} tip. "
         f"They split the total equally. How much does each person pay?")
    s1, total = calc(f"{meal}+{tip}", "$")
    s2, each = calc(f"{total}/{k}", "$")
    return q, [f"The total is {s1}.", f"There are {k} people, so each pays {s2}."], each


@template()
def t_coins(r):
    p, = people(r)
    qn, dn, nn = r.randint(2, 12), r.randint(2, 12), r.randint(2, 12)
    q = f"{p.name} has {qn} quarters, {dn} dimes and {nn} nickels. How many cents does {p.he} have?"
    s1, a = calc(f"{qn}*25")
    s2, b = calc(f"{dn}*10")
    s3, c = calc(f"{nn}*5")
    s4, total = calc(f"{a}+{b}+{c}")
    return q, [f"The quarters are worth {s1} cents.", f"The dimes are worth {s2} cents.",
               f"The nickels are worth {s3} cents.", f"{cap(p.he)} has {s4} cents."], total


@template()
def t_subscription(r):
    p, = people(r)
    monthly = r.randint(3, 25)
    thing = r.choice(["a music app", "a streaming service", "a gym", "a magazine", "a cloud drive"])
    q = f"{p.name} pays ${monthly} per month for {thing}. How much does {p.he} pay in a year?"
    s, v = calc(f"{monthly}*12", "$")
    return q, [f"A year has 12 months, so {p.he} pays {s}."], v


@template()
def t_save_goal(r):
    p, = people(r)
    item = r.choice(["bike", "video game", "tablet", "skateboard", "telescope", "guitar"])
    weekly, weeks, saved = r.randint(3, 15), r.randint(2, 12), r.randint(5, 60)
    cost = saved + weekly * weeks
    q = (f"{p.name} wants to buy a {item} that costs ${cost}. {cap(p.he)} has already saved ${saved}. "
         f"If {p.he} saves ${weekly} each week, how many weeks will it take to buy the {item}?")
    s1, need = calc(f"{cost}-{saved}", "$")
    s2, w = calc(f"{need}/{weekly}")
    return q, [f"{cap(p.he)} still needs {s1}.", f"It will take {s2} weeks."], w


@template()
def t_savings_after(r):
    p, = people(r)
    start, weekly, weeks = r.randint(10, 90), r.randint(2, 15), r.randint(2, 10)
    q = f"{p.name} has ${start} in {p.his} piggy bank. {cap(p.he)} adds ${weekly} every week. How much money will {p.he} have after {weeks} weeks?"
    s1, added = calc(f"{weekly}*{weeks}", "$")
    s2, total = calc(f"{start}+{added}", "$")
    return q, [f"{cap(p.he)} adds {s1}.", f"{cap(p.he)} will have {s2}."], total


@template()
def t_earnings_days(r):
    p, = people(r)
    mon, extra = r.randint(5, 40), r.randint(2, 30)
    q = (f"{p.name} earned ${mon} on Monday. On Tuesday {p.he} earned twice as much, and on Wednesday {p.he} earned "
         f"${extra}. How much did {p.he} earn in the three days?")
    s1, tue = calc(f"{mon}*2", "$")
    s2, total = calc(f"{mon}+{tue}+{extra}", "$")
    return q, [f"On Tuesday {p.he} earned {s1}.", f"In total {p.he} earned {s2}."], total


# --- work and time --------------------------------------------------------------------------

@template()
def t_hourly_wage(r):
    p, = people(r)
    job = r.choice(["babysitting", "tutoring", "walking dogs", "mowing lawns", "washing cars"])
    w, h = r.randint(5, 20), r.randint(2, 9)
    q = f"{p.name} earns ${w} an hour for {job}. This week {p.he} worked {h} hours. How much did {p.he} earn?"
    s, v = calc(f"{w}*{h}", "$")
    return q, [f"{p.name} earned {s}."], v


@template()
def t_weekly_wage(r):
    p, = people(r)
    w, h, d = r.randint(5, 15), r.randint(2, 8), r.randint(2, 6)
    q = f"{p.name} works {h} hours a day, {d} days a week. {cap(p.he)} is paid ${w} an hour. How much does {p.he} earn in a week?"
    s1, hours = calc(f"{h}*{d}")
    s2, pay = calc(f"{hours}*{w}", "$")
    return q, [f"{cap(p.he)} works {s1} hours a week.", f"{cap(p.he)} earns {s2} a week."], pay


@template()
def t_practice_hours(r):
    p, = people(r)
    act = r.choice(["the piano", "the violin", "soccer", "chess", "drawing", "swimming"])
    m = r.choice([15, 20, 30, 45, 60, 90])
    d = r.choice([k for k in range(2, 13) if m * k % 60 == 0])
    q = f"{p.name} practices {act} for {m} minutes a day. How many hours does {p.he} practice in {d} days?"
    s1, mins = calc(f"{m}*{d}")
    s2, hours = calc(f"{mins}/60")
    return q, [f"{cap(p.he)} practices {s1} minutes.", f"That is {s2} hours."], hours


@template(seen=False)
def t_episodes(r):
    p, = people(r)
    n, ep, movie = r.randint(2, 6), r.choice([20, 22, 25, 30, 40, 45]), r.randint(80, 150)
    q = f"{p.name} watches {n} episodes of a show that are {ep} minutes each, and then a movie that is {movie} minutes long. How many minutes does {p.he} spend watching?"
    s1, eps = calc(f"{n}*{ep}")
    s2, total = calc(f"{eps}+{movie}")
    return q, [f"The episodes take {s1} minutes.", f"In total {p.he} watches for {s2} minutes."], total


@template()
def t_weeks_days(r):
    p, = people(r)
    item, verb = r.choice([("glasses of water", "drink"), ("apples", "eat"), ("pages", "read"), ("push-ups", "do")])
    verbs = "does" if verb == "do" else verb + "s"
    per_day, weeks = r.randint(2, 12), r.randint(2, 6)
    q = f"{p.name} {verbs} {per_day} {item} every day. How many {item} does {p.he} {verb} in {weeks} weeks?"
    s1, days = calc(f"{weeks}*7")
    s2, total = calc(f"{days}*{per_day}")
    return q, [f"{weeks} weeks is {s1} days.", f"{cap(p.he)} {verbs} {s2} {item}."], total


# --- reading, school and groups ---------------------------------------------------------------

@template()
def t_pages_days(r):
    p, = people(r)
    pages, days = r.randint(5, 30), r.randint(2, 9)
    q = f"{p.name} reads {pages} pages of a book every day. How many pages does {p.he} read in {days} days?"
    s, v = calc(f"{pages}*{days}")
    return q, [f"{cap(p.he)} reads {s} pages."], v


@template()
def t_book_left(r):
    p, = people(r)
    pages, days = r.randint(5, 25), r.randint(2, 8)
    book = pages * days + r.randint(10, 200)
    q = f"{p.name} is reading a {book}-page book. {cap(p.he)} reads {pages} pages a day for {days} days. How many pages are left to read?"
    s1, read = calc(f"{pages}*{days}")
    s2, left = calc(f"{book}-{read}")
    return q, [f"{cap(p.he)} has read {s1} pages.", f"There are {s2} pages left."], left


@template()
def t_book_half(r):
    p, = people(r)
    yday = r.randint(5, 20)
    book = 3 * yday + 2 * r.randint(10, 60)
    q = (f"{p.name} is reading a {book}-page book. Yesterday {p.he} read {yday} pages and today {p.he} read twice as many "
         f"pages as yesterday. If {p.he} wants to read half of the remaining pages tomorrow, how many pages should {p.he} read?")
    s1, today = calc(f"{yday}*2")
    s2, done = calc(f"{yday}+{today}")
    s3, left = calc(f"{book}-{done}")
    s4, half = calc(f"{left}/2")
    return q, [f"Today {p.he} read {s1} pages.", f"So far {p.he} has read {s2} pages.",
               f"There are {s3} pages left.", f"Tomorrow {p.he} should read {s4} pages."], half


@template()
def t_class_boys(r):
    p, = people(r)
    n = r.randint(5, 20) * 4
    frac, den = r.choice([("half", 2), ("a quarter", 4)])
    q = f"There are {n} students in {p.name}'s class. {cap(frac)} of them are girls. How many boys are in the class?"
    s1, girls = calc(f"{n}/{den}")
    s2, boys = calc(f"{n}-{girls}")
    return q, [f"There are {s1} girls.", f"There are {s2} boys."], boys


@template()
def t_groups_pencils(r):
    g, k, per = r.randint(2, 8), r.randint(3, 10), r.randint(2, 9)
    students = g * k
    item = r.choice(THINGS)
    q = f"A teacher splits {students} students into groups of {g}. Each group gets {per} {item}. How many {item} does the teacher need?"
    s1, groups = calc(f"{students}/{g}")
    s2, total = calc(f"{groups}*{per}")
    return q, [f"There are {s1} groups.", f"The teacher needs {s2} {item}."], total


@template()
def t_share(r):
    p, = people(r)
    item, k, each = r.choice(FOODS + THINGS), r.randint(2, 9), r.randint(2, 12)
    q = f"{p.name} has {k * each} {item}. {cap(p.he)} shares them equally among {k} friends. How many {item} does each friend get?"
    s, v = calc(f"{k * each}/{k}")
    return q, [f"Each friend gets {s} {item}."], v


@template()
def t_give_each(r):
    p, = people(r)
    item, k, each = r.choice(THINGS), r.randint(2, 8), r.randint(2, 9)
    have = k * each + r.randint(1, 60)
    q = f"{p.name} has {have} {item}. {cap(p.he)} gives {each} {item} to each of {p.his} {k} friends. How many {item} does {p.he} have left?"
    s1, given = calc(f"{each}*{k}")
    s2, left = calc(f"{have}-{given}")
    return q, [f"{cap(p.he)} gives away {s1} {item}.", f"{cap(p.he)} has {s2} {item} left."], left


# --- counting and collections -------------------------------------------------------------------

@template()
def t_give_away(r):
    p, q_ = people(r, 2)
    item, have = r.choice(FOODS + THINGS), r.randint(10, 99)
    give = r.randint(1, have - 1)
    q = f"{p.name} has {have} {item}. {cap(p.he)} gives {give} of them to {q_.name}. How many {item} does {p.name} have now?"
    s, v = calc(f"{have}-{give}")
    return q, [f"{p.name} has {s} {item} now."], v


@template()
def t_twice_as_many(r):
    p, = people(r)
    item, a = r.choice(FOODS + THINGS), r.randint(5, 60)
    i = r.randint(0, 10)
    m1, m2 = MONTHS[i], MONTHS[i + 1]
    q = f"{p.name} sold {a} {item} in {m1}, and then {p.he} sold twice as many {item} in {m2}. How many {item} did {p.he} sell altogether in {m1} and {m2}?"
    s1, b = calc(f"{a}*2")
    s2, total = calc(f"{a}+{b}")
    return q, [f"{p.name} sold {s1} {item} in {m2}.", f"{p.name} sold {s2} {item} altogether."], total


@template()
def t_half_as_many(r):
    p, = people(r)
    item, a = r.choice(FOODS + THINGS), 2 * r.randint(3, 40)
    d1 = r.randint(0, 5)
    q = f"{p.name} picked {a} {item} on {DAYS[d1]} and half as many on {DAYS[d1 + 1]}. How many {item} did {p.he} pick on the two days?"
    s1, b = calc(f"{a}/2")
    s2, total = calc(f"{a}+{b}")
    return q, [f"On {DAYS[d1 + 1]} {p.he} picked {s1} {item}.", f"In total {p.he} picked {s2} {item}."], total


@template()
def t_boxes(r):
    p, = people(r)
    box, item, b, k = r.choice(CONTAINERS), r.choice(THINGS + FOODS), r.randint(2, 12), r.randint(3, 15)
    q = f"{p.name} has {b} {box} of {item}. Each of the {box} has {k} {item}. How many {item} does {p.he} have?"
    s, v = calc(f"{b}*{k}")
    return q, [f"{cap(p.he)} has {s} {item}."], v


@template()
def t_boxes_lost(r):
    p, = people(r)
    box, item, b, k = r.choice(CONTAINERS), r.choice(FOODS), r.randint(2, 10), r.randint(4, 12)
    bad = r.randint(1, b * k - 1)
    q = f"{p.name} buys {b} {box} of {item} with {k} {item} in each. {bad} of the {item} are rotten and get thrown away. How many {item} are left?"
    s1, total = calc(f"{b}*{k}")
    s2, left = calc(f"{total}-{bad}")
    return q, [f"{cap(p.he)} buys {s1} {item}.", f"There are {s2} {item} left."], left


@template()
def t_more_than_times(r):
    a, b, c = people(r, 3)
    item, x, more, k = r.choice(THINGS), r.randint(3, 30), r.randint(2, 20), r.randint(2, 5)
    q = f"{a.name} has {x} {item}. {b.name} has {more} more {item} than {a.name}. {c.name} has {k} times as many {item} as {b.name}. How many {item} does {c.name} have?"
    s1, y = calc(f"{x}+{more}")
    s2, z = calc(f"{y}*{k}")
    return q, [f"{b.name} has {s1} {item}.", f"{c.name} has {s2} {item}."], z


@template()
def t_lost_found(r):
    p, = people(r)
    item, have = r.choice(THINGS), r.randint(20, 99)
    lost, found = r.randint(1, have - 1), r.randint(1, 40)
    q = f"{p.name} had {have} {item}. {cap(p.he)} lost {lost} of them and then found {found} more. How many {item} does {p.he} have now?"
    s1, a = calc(f"{have}-{lost}")
    s2, b = calc(f"{a}+{found}")
    return q, [f"After losing some, {p.he} had {s1} {item}.", f"Now {p.he} has {s2} {item}."], b


@template()
def t_store_sold(r):
    stock = r.randint(60, 400)
    item = r.choice(CLOTHES + THINGS)
    a = r.randint(5, stock // 2)
    b = r.randint(5, stock - a)
    q = f"A store had {stock} {item}. It sold {a} on Monday and {b} on Tuesday. How many {item} does the store have left?"
    s1, sold = calc(f"{a}+{b}")
    s2, left = calc(f"{stock}-{sold}")
    return q, [f"The store sold {s1} {item}.", f"It has {s2} {item} left."], left


@template()
def t_bus(r):
    start, on = r.randint(5, 40), r.randint(2, 25)
    off = r.randint(1, start + on)
    q = f"A bus has {start} passengers. At the first stop {on} people get on. At the second stop {off} people get off. How many passengers are on the bus now?"
    s1, a = calc(f"{start}+{on}")
    s2, b = calc(f"{a}-{off}")
    return q, [f"After the first stop there are {s1} passengers.", f"After the second stop there are {s2} passengers."], b


@template()
def t_legs(r):
    a1, l1, a2, l2 = r.choice([("chickens", 2, "cows", 4), ("ducks", 2, "goats", 4), ("geese", 2, "pigs", 4),
                               ("spiders", 8, "ants", 6), ("birds", 2, "dogs", 4)])
    p, = people(r)
    n1, n2 = r.randint(2, 20), r.randint(2, 20)
    q = f"{p.name} has {n1} {a1} and {n2} {a2}. How many legs do the animals have in total?"
    s1, x = calc(f"{n1}*{l1}")
    s2, y = calc(f"{n2}*{l2}")
    s3, total = calc(f"{x}+{y}")
    return q, [f"The {a1} have {s1} legs.", f"The {a2} have {s2} legs.", f"In total there are {s3} legs."], total


@template()
def t_eggs(r):
    p, = people(r)
    hens, per, price = r.randint(3, 12), r.randint(1, 3), r.randint(1, 4)
    eat = r.randint(1, hens * per - 1)
    q = (f"{p.name} has {hens} hens that each lay {per} eggs a day. {cap(p.he)} eats {eat} eggs every day and sells the rest "
         f"at the market for ${price} per egg. How much money does {p.he} make every day?")
    s1, laid = calc(f"{hens}*{per}")
    s2, rest = calc(f"{laid}-{eat}")
    s3, money = calc(f"{rest}*{price}", "$")
    return q, [f"The hens lay {s1} eggs a day.", f"{cap(p.he)} sells {s2} eggs.", f"{cap(p.he)} makes {s3} every day."], money


@template()
def t_ages(r):
    a, b = people(r, 2)
    x, older, years = r.randint(3, 40), r.randint(2, 30), r.randint(2, 15)
    q = f"{a.name} is {x} years old. {b.name} is {older} years older than {a.name}. How old will {b.name} be in {years} years?"
    s1, y = calc(f"{x}+{older}")
    s2, z = calc(f"{y}+{years}")
    return q, [f"{b.name} is {s1} years old now.", f"In {years} years {b.he} will be {s2} years old."], z


@template()
def t_ages_times(r):
    p, = people(r)
    x, k = r.randint(3, 15), r.randint(2, 5)
    rel = r.choice(["mother", "father", "aunt", "uncle", "grandmother"])
    q = f"{p.name} is {x} years old. {cap(p.his)} {rel} is {k} times as old as {p.he} is. What is the sum of their ages?"
    s1, y = calc(f"{x}*{k}")
    s2, total = calc(f"{x}+{y}")
    return q, [f"{cap(p.his)} {rel} is {s1} years old.", f"The sum of their ages is {s2}."], total


@template(seen=False)
def t_weights(r):
    a, b = r.sample(["dog", "cat", "rabbit", "goat", "pig", "sheep"], 2)
    w, less = r.randint(15, 90), r.randint(2, 14)
    q = f"A {a} weighs {w} pounds. A {b} weighs {less} pounds less than the {a}. How much do the two animals weigh together?"
    s1, y = calc(f"{w}-{less}")
    s2, total = calc(f"{w}+{y}")
    return q, [f"The {b} weighs {s1} pounds.", f"Together they weigh {s2} pounds."], total


# --- cooking and food -----------------------------------------------------------------------------

@template()
def t_batches_bags(r):
    p, = people(r)
    item = r.choice(["cookies", "muffins", "cupcakes", "brownies"])
    bag, bags = r.randint(2, 6), r.randint(2, 12)
    total = bag * bags
    batches = r.choice([d for d in range(2, 7) if total % d == 0])
    per_batch = total // batches
    q = f"{p.name} bakes {batches} batches of {item} with {per_batch} {item} in each batch. {cap(p.he)} puts them in bags of {bag}. How many bags does {p.he} fill?"
    s1, t = calc(f"{batches}*{per_batch}")
    s2, n = calc(f"{t}/{bag}")
    return q, [f"{cap(p.he)} bakes {s1} {item}.", f"{cap(p.he)} fills {s2} bags."], n


@template()
def t_pizza(r):
    p, = people(r)
    pizzas, slices, kids, each = r.randint(2, 6), r.choice([6, 8, 10, 12]), r.randint(2, 8), r.randint(1, 4)
    q = f"{p.name} orders {pizzas} pizzas that are each cut into {slices} slices. {kids} children each eat {each} slices. How many slices are left?"
    s1, total = calc(f"{pizzas}*{slices}")
    s2, eaten = calc(f"{kids}*{each}")
    s3, left = calc(f"{total}-{eaten}")
    return q, [f"There are {s1} slices.", f"The children eat {s2} slices.", f"There are {s3} slices left."], left


@template()
def t_recipe(r):
    p, = people(r)
    cups, per, k = r.randint(2, 6), r.choice([6, 8, 10, 12, 20, 24]), r.randint(2, 6)
    item = r.choice(["cookies", "pancakes", "muffins", "rolls"])
    q = f"A recipe needs {cups} cups of flour to make {per} {item}. How many cups of flour does {p.name} need to make {per * k} {item}?"
    s1, times = calc(f"{per * k}/{per}")
    s2, need = calc(f"{times}*{cups}")
    return q, [f"{cap(p.he)} is making {s1} times the recipe.", f"{cap(p.he)} needs {s2} cups of flour."], need


@template()
def t_candy_third(r):
    p, = people(r)
    n, candy = 3 * r.randint(4, 40), r.choice(["candies", "jelly beans", "gumballs", "mints", "toffees"])
    q = f"A jar has {n} {candy}. {p.name} eats a third of them. How many {candy} are left in the jar?"
    s1, ate = calc(f"{n}/3")
    s2, left = calc(f"{n}-{ate}")
    return q, [f"{p.name} eats {s1} {candy}.", f"There are {s2} {candy} left."], left


# --- distance, area and volume ---------------------------------------------------------------------

@template()
def t_drive(r):
    p, = people(r)
    speed, hours = r.choice([30, 40, 45, 50, 55, 60, 65, 70]), r.randint(2, 8)
    q = f"{p.name} drives at {speed} miles per hour for {hours} hours. How many miles does {p.he} drive?"
    s, v = calc(f"{speed}*{hours}")
    return q, [f"{cap(p.he)} drives {s} miles."], v


@template()
def t_commute(r):
    p, = people(r)
    d, days = r.randint(2, 25), r.randint(3, 6)
    q = f"{p.name} lives {d} miles from work. {cap(p.he)} drives to work and back home {days} days a week. How many miles does {p.he} drive each week?"
    s1, day = calc(f"{d}*2")
    s2, week = calc(f"{day}*{days}")
    return q, [f"Each day {p.he} drives {s1} miles.", f"Each week {p.he} drives {s2} miles."], week


@template()
def t_laps(r):
    p, = people(r)
    track, laps, days = r.choice([100, 200, 250, 400]), r.randint(2, 5), r.randint(2, 4)
    q = f"A track is {track} meters long. {p.name} runs {laps} laps every day. How many meters does {p.he} run in {days} days?"
    s1, day = calc(f"{track}*{laps}")
    s2, total = calc(f"{day}*{days}")
    return q, [f"Each day {p.he} runs {s1} meters.", f"In {days} days {p.he} runs {s2} meters."], total


@template()
def t_fence(r):
    p, = people(r)
    length, width = r.randint(5, 40), r.randint(3, 30)
    q = f"{p.name}'s garden is a rectangle {length} feet long and {width} feet wide. How many feet of fence does {p.he} need to go around it?"
    s1, half = calc(f"{length}+{width}")
    s2, total = calc(f"{half}*2")
    return q, [f"One length and one width add up to {s1} feet.", f"{cap(p.he)} needs {s2} feet of fence."], total


@template()
def t_carpet(r):
    p, = people(r)
    length, width, price = r.randint(3, 15), r.randint(3, 12), r.randint(2, 9)
    q = f"{p.name}'s room is {length} feet by {width} feet. Carpet costs ${price} per square foot. How much will it cost to carpet the room?"
    s1, area = calc(f"{length}*{width}")
    s2, cost = calc(f"{area}*{price}", "$")
    return q, [f"The room is {s1} square feet.", f"The carpet costs {s2}."], cost


@template()
def t_garden_rows(r):
    p, = people(r)
    plant, rows, per = r.choice(["tomato plants", "sunflowers", "carrots", "roses", "pepper plants"]), r.randint(2, 12), r.randint(3, 15)
    q = f"{p.name} plants {rows} rows of {plant} with {per} {plant} in each row. How many {plant} does {p.he} plant?"
    s, v = calc(f"{rows}*{per}")
    return q, [f"{cap(p.he)} plants {s} {plant}."], v


@template()
def t_tank(r):
    rate, mins = r.randint(2, 10), r.randint(2, 15)
    size = rate * mins + 10 * r.randint(1, 10)
    have = size - rate * mins
    tank = r.choice(["tank", "pool", "barrel", "bathtub", "pond"])
    q = f"A {tank} holds {size} liters of water. It has {have} liters in it. A hose adds {rate} liters every minute. How many minutes will it take to fill the {tank}?"
    s1, need = calc(f"{size}-{have}")
    s2, t = calc(f"{need}/{rate}")
    return q, [f"The {tank} needs {s1} more liters.", f"It will take {s2} minutes."], t


@template()
def t_run_week(r):
    p, = people(r)
    per_day, left_days = r.randint(2, 8), r.randint(2, 5)
    mon, tue = r.randint(1, 9), r.randint(1, 9)
    goal = mon + tue + per_day * left_days
    q = (f"{p.name} wants to run {goal} miles this week. {cap(p.he)} ran {mon} miles on Monday and {tue} miles on Tuesday. "
         f"If {p.he} runs the same distance on each of the remaining {left_days} days, how many miles does {p.he} run each day?")
    s1, done = calc(f"{mon}+{tue}")
    s2, left = calc(f"{goal}-{done}")
    s3, each = calc(f"{left}/{left_days}")
    return q, [f"{cap(p.he)} has run {s1} miles.", f"{cap(p.he)} has {s2} miles left.", f"Each day {p.he} runs {s3} miles."], each


# --- unseen templates: held out from training ---------------------------------------------------------

@template(seen=False)
def t_sell_profit(r):
    p, = people(r)
    item, n, cost = r.choice(FOODS), r.randint(5, 30), r.randint(1, 5)
    sell = cost + r.randint(1, 4)
    q = f"{p.name} buys {n} {item} for ${cost} each and sells them for ${sell} each. How much profit does {p.he} make?"
    s1, gain = calc(f"{sell}-{cost}", "$")
    s2, profit = calc(f"{gain}*{n}", "$")
    return q, [f"{cap(p.he)} makes {s1} on each one.", f"{cap(p.he)} makes a profit of {s2}."], profit


@template(seen=False)
def t_shelves(r):
    p, = people(r)
    shelves, per, extra = r.randint(2, 9), r.randint(5, 20), r.randint(2, 30)
    q = f"{p.name} has a bookcase with {shelves} shelves. Each shelf holds {per} books. {cap(p.he)} also has {extra} books on the floor. How many books does {p.he} have?"
    s1, a = calc(f"{shelves}*{per}")
    s2, total = calc(f"{a}+{extra}")
    return q, [f"The shelves hold {s1} books.", f"{cap(p.he)} has {s2} books."], total


@template(seen=False)
def t_team_cost(r):
    coach, = people(r)
    players, shirt, socks = r.randint(5, 15), r.randint(8, 20), r.randint(2, 6)
    q = f"Coach {coach.name} buys a shirt for ${shirt} and a pair of socks for ${socks} for each of the {players} players. How much does the coach spend?"
    s1, each = calc(f"{shirt}+{socks}", "$")
    s2, total = calc(f"{each}*{players}", "$")
    return q, [f"Each player's kit costs {s1}.", f"The coach spends {s2}."], total


@template(seen=False)
def t_trees(r):
    rows, per = r.randint(3, 12), r.randint(4, 15)
    cut = r.randint(1, rows * per - 1)
    q = f"An orchard has {rows} rows of trees with {per} trees in each row. The farmer cuts down {cut} trees. How many trees are left?"
    s1, total = calc(f"{rows}*{per}")
    s2, left = calc(f"{total}-{cut}")
    return q, [f"There are {s1} trees.", f"There are {s2} trees left."], left


@template(seen=False)
def t_stamps_double(r):
    a, b = people(r, 2)
    x, k, gives = r.randint(5, 40), r.choice([2, 3]), r.randint(1, 5)
    word = {2: "twice", 3: "three times"}[k]
    q = f"{a.name} has {x} stamps. {b.name} has {word} as many stamps as {a.name}. {b.name} gives {gives} stamps to {a.name}. How many stamps does {b.name} have now?"
    s1, y = calc(f"{x}*{k}")
    s2, z = calc(f"{y}-{gives}")
    return q, [f"{b.name} had {s1} stamps.", f"Now {b.name} has {s2} stamps."], z


@template(seen=False)
def t_cars_parking(r):
    floors, spots = r.randint(2, 6), r.randint(10, 40)
    empty = r.randint(1, floors * spots - 1)
    q = f"A parking garage has {floors} floors with {spots} spots on each floor. {empty} spots are empty. How many cars are parked in the garage?"
    s1, total = calc(f"{floors}*{spots}")
    s2, cars = calc(f"{total}-{empty}")
    return q, [f"The garage has {s1} spots.", f"There are {s2} cars parked."], cars


@template(seen=False)
def t_marbles_share_left(r):
    p, = people(r)
    k, each, keep = r.randint(2, 6), r.randint(3, 12), r.randint(2, 20)
    total = k * each + keep
    q = f"{p.name} has {total} marbles. {cap(p.he)} keeps {keep} marbles and shares the rest equally among {k} friends. How many marbles does each friend get?"
    s1, rest = calc(f"{total}-{keep}")
    s2, per = calc(f"{rest}/{k}")
    return q, [f"{cap(p.he)} shares {s1} marbles.", f"Each friend gets {s2} marbles."], per


@template(seen=False)
def t_lemonade(r):
    p, = people(r)
    cups, price, cost = r.randint(10, 60), r.randint(1, 3), r.randint(3, 15)
    q = f"{p.name} sells {cups} cups of lemonade for ${price} each. The lemons and sugar cost {p.him} ${cost}. How much money does {p.he} earn after paying for the supplies?"
    s1, sales = calc(f"{cups}*{price}", "$")
    s2, profit = calc(f"{sales}-{cost}", "$")
    return q, [f"{cap(p.he)} sells {s1} of lemonade.", f"{cap(p.he)} earns {s2}."], profit


@template(seen=False)
def t_walk_dog(r):
    p, = people(r)
    mins, times, days = r.choice([10, 15, 20, 30]), r.randint(2, 3), r.randint(2, 7)
    q = f"{p.name} walks {p.his} dog {times} times a day for {mins} minutes each time. How many minutes does {p.he} spend walking the dog in {days} days?"
    s1, day = calc(f"{mins}*{times}")
    s2, total = calc(f"{day}*{days}")
    return q, [f"Each day {p.he} walks for {s1} minutes.", f"In {days} days {p.he} walks for {s2} minutes."], total


@template(seen=False)
def t_cake_slices(r):
    p, = people(r)
    cakes, slices = r.randint(2, 5), r.choice([8, 10, 12])
    guests = r.choice([g for g in range(2, 25) if cakes * slices % g == 0])
    q = f"{p.name} bakes {cakes} cakes and cuts each cake into {slices} slices. {cap(p.he)} shares all the slices equally among {guests} guests. How many slices does each guest get?"
    s1, total = calc(f"{cakes}*{slices}")
    s2, each = calc(f"{total}/{guests}")
    return q, [f"There are {s1} slices.", f"Each guest gets {s2} slices."], each


def seen_templates() -> list[str]:
    return [name for name in TEMPLATES if name not in UNSEEN]


def unseen_templates() -> list[str]:
    return [name for name in TEMPLATES if name in UNSEEN]


def make_problem(r: random.Random, name: str) -> dict:
    """One problem from template `name`, resampling until its arithmetic is valid."""
    while True:
        try:
            question, lines, answer = TEMPLATES[name](r)
            break
        except ValueError:
            continue
    return {"question": question, "answer": "\n".join(lines + [f"#### {answer}"]),
            "template": name, "seen": name not in UNSEEN}


def generate(n: int, seed: int, templates: list[str], exclude: set[str] = frozenset()) -> list[dict]:
    """n problems with distinct questions, none of whose question text is in `exclude`."""
    r = random.Random(seed)
    seen_q, out = set(exclude), []
    for _ in range(100 * n):
        if len(out) == n:
            return out
        p = make_problem(r, r.choice(templates))
        if p["question"] not in seen_q:
            seen_q.add(p["question"])
            out.append(p)
    raise RuntimeError(f"could only make {len(out)} of {n} unique problems")
